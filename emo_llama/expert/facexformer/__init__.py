"""FaceXFormer-B (the paper's facial expert) from its official checkpoint: a Swin-B backbone (`swin`, on
transformers' SwinModel) and its task decoder (`decoder`), wrapped as a facial expert (`expert`)."""
