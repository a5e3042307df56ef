"""Convert face-api's TF.js weights into data/weights/*.safetensors (maintainers only; outputs are committed).

    npm pack @vladmandic/face-api@1.7.15   # writes vladmandic-face-api-1.7.15.tgz here
    python scripts/convert_faceapi.py vladmandic-face-api-1.7.15.tgz      # or the extracted folder
    python scripts/convert_faceapi.py vladmandic-face-api-1.7.15.tgz --reference   # + TF.js outputs (node)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emo_llama.expert.faceapi.convert import DEFAULT_WEIGHTS_DIR, convert_faceapi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="npm tarball (.tgz) of @vladmandic/face-api or its extracted folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS_DIR, help="output folder (default: data/weights)")
    parser.add_argument("--reference", action="store_true",
                        help="also run the original TF.js nets with node and save their outputs for the port test")
    args = parser.parse_args()
    summary = convert_faceapi(args.source, args.out, reference=args.reference)
    for file_name, shapes in summary.items():
        size = (args.out / file_name).stat().st_size
        print(f"{file_name}: {len(shapes)} tensors, {size / 1024:.0f} KiB")
    print(f"wrote {args.out}/LICENSE-face-api.txt")
    if args.reference:
        print(f"wrote {args.out}/faceapi_tfjs_reference.json")


if __name__ == "__main__":
    main()
