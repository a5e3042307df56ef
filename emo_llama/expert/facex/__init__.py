"""facex's expression net (a Keras MobileNetV2 trained on real faces), ported to PyTorch: the offline expert."""
