"""Images in and out: datasets behind one --data spec (datasets: the spec; base, npz_files,
torchvision_sets, image_folders: the sources), augmentation, the folder cache, contact sheets."""
