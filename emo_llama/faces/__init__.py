"""Media and faces (notebook 01): decoding images and videos at 1 FPS (`video`), finding and cropping faces with
MTCNN (`cropper`), caching the crops of whole datasets (`cache`), the real faces that ship in packages and the
real-face check set (`samples`), and their figures (`plots`)."""

from emo_llama.faces.cropper import CropConfig, FaceCropper, FaceResult, square_crop, to_rgb_uint8

__all__ = ["CropConfig", "FaceCropper", "FaceResult", "square_crop", "to_rgb_uint8"]
