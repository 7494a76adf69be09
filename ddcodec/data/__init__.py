"""Images in and out: datasets behind one --data spec, augmentation, the folder cache, contact sheets."""
