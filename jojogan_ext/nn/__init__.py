"""Neural network modules: StyleGAN2 (rosinality layout) and the e4e encoder."""
