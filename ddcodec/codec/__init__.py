"""The rate-utility image model: quantised multiscale latents, a tiny decoder, an ARM entropy model.

Each synthetic image is L latent grids (grid i is ceil(H/2^i) x ceil(W/2^i)) of integers; a
learnable upsampler brings them to full resolution, a small synthesis network turns them into
pixels, and an autoregressive Laplace model (the ARM) prices every latent in bits.
"""
