"""Set types: the distilled-set file, the latent payload, distributional sets, other tools' sets."""
