"""face-api's nets ported to PyTorch (the offline stack's facial expert): the 68-landmark net whose feature map
is the face tokens, the age/gender net and the 7-class expression net, with their TF.js weights converted once
(`convert`, `tfjs_weights`) into `data/weights/`."""
