"""DyGen: learning with noisy labels by dynamics-enhanced generative modelling."""
