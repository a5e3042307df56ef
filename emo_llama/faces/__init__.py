"""Finding and cropping faces (MTCNN) and caching the crops of whole datasets."""

from .cropper import CropConfig, FaceCropper, FaceResult, square_crop, to_rgb_uint8

__all__ = ["CropConfig", "FaceCropper", "FaceResult", "square_crop", "to_rgb_uint8"]
