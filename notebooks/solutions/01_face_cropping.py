"""Worked solutions to the exercises at the end of notebook 01 (face cropping).

    python notebooks/solutions/01_face_cropping.py

Everything runs on real media that ship inside installed packages (`emo_llama.faces.samples`: the astronaut,
Grace Hopper, the carphone video) with MTCNN's and face-api's real weights, on the CPU, in a few seconds.
tests/test_solutions.py runs `solve` so that these answers never rot.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from emo_llama.expert import agreement_with_5_points, crops_to_tensor, get_expert
from emo_llama.faces import CropConfig, FaceCropper, samples
from emo_llama.faces.video import load_frames, nearest_frame_indices


def _read_face(expert, result) -> dict:
    """What the facial expert says about one FaceResult: gender, P(female), age, worst landmark error vs MTCNN."""
    out = expert(crops_to_tensor([result.crop]))
    errors = agreement_with_5_points(out.landmarks_in_frame([result.crop_box]), result.landmarks_5[None])
    gender, _ = out.gender(0)
    return {"gender": gender, "p_female": float(out.gender_probs[0, 0]), "age": float(out.age_years[0]),
            "worst_error_iod": float(errors.max())}


def exercise_1(margins=(0.0, 0.25, 0.5, 1.0), device: str = "cpu") -> dict:
    """Exercise 1: change the crop margin. What moves: MTCNN's box, the crop, the expert's gender call, its landmarks?

    Answer: MTCNN's box and 5 points do not move at all - detection runs on the frame, and the margin only
    decides how much is cut around the box (the crop's side is max(w, h) * (1 + margin)). The facial expert
    does change its mind, because the `offline` expert reads the central `face_fraction` = 1/1.5 of the crop,
    the share that margin 0.5 leaves to the face. At margin 0 that window cuts into the face: on the astronaut
    the mouth corners land about 0.17 inter-ocular distances (IOD) from MTCNN's, against 0.04 at margin 0.5. At
    margin 1.0 the window takes in hair, neck and background and the astronaut's gender call turns 'male'
    (P(female) falls with every step of margin: 0.98, 0.92, 0.86, 0.45). Passing
    `face_fraction=1 / (1 + margin)` to `get_expert` gives the nets the same tight face at every margin: all
    landmark errors are back to about 0.05 IOD and the call is 'female' each time. The margin and the expert's
    window are one setting, not two.
    """
    astronaut = samples.astronaut()
    default_expert = get_expert("offline", device=device)
    rows = []
    for margin in margins:
        (result,) = FaceCropper(CropConfig(margin=margin, device=device)).crop(astronaut)
        matched = get_expert("offline", device=device, face_fraction=1 / (1 + margin))
        box = result.box
        rows.append({"margin": margin, "box": box.round(2).tolist(),
                     "crop_side": float(result.crop_box[2] - result.crop_box[0]),
                     "box_side": float(max(box[2] - box[0], box[3] - box[1])),
                     "default": _read_face(default_expert, result), "matched": _read_face(matched, result)})
    print(f"{'margin':>6} {'crop side':>9}  default expert: gender P(f) worst/IOD   face_fraction=1/(1+m): ...")
    for r in rows:
        d, m = r["default"], r["matched"]
        print(f"{r['margin']:>6} {r['crop_side']:>9.0f}  {d['gender']:>14} {d['p_female']:.2f} {d['worst_error_iod']:.3f}"
              f"   {m['gender']:>8} {m['p_female']:.2f} {m['worst_error_iod']:.3f}")
    return {"rows": rows}


def exercise_2(device: str = "cpu") -> dict:
    """Exercise 2: a FERPlus-like face, 48 x 48 grayscale. Does MTCNN find it, and what crop comes out?

    Answer: it is found, with probability above 0.99. The frame is smaller than `small_side` (112 px), so
    the cropper upscales and edge-pads it before MTCNN runs, then maps the box back: the box is in the 48 px
    frame's own pixels (about 26 x 31 px here). The crop is still 224 x 224 x 3 - the gray is copied into R, G
    and B (`to_rgb_uint8`) and the ~46 px square around the box is blown up almost 5x, so it holds no more
    detail than the 48 px input. The expert still reads it, less surely: the astronaut stays 'female' (P 0.76
    against 0.86 on the colour crop), her age estimate moves from about 30 to about 35 years, and the worst
    landmark lands 0.07 IOD from MTCNN's instead of 0.04.
    """
    cropper = FaceCropper(CropConfig(device=device))
    expert = get_expert("offline", device=device)
    (colour,) = cropper.crop(samples.astronaut())
    gray48 = np.asarray(Image.fromarray(colour.crop).convert("L").resize((48, 48)))
    (small,) = cropper.crop(gray48)
    found = {"found": small.found, "prob": small.prob, "box": None if small.box is None else small.box.tolist()}
    if small.found:
        crop = small.crop
        found |= {"crop_shape": crop.shape,
                  "gray_copied_to_rgb": bool((crop[..., 0] == crop[..., 1]).all() and (crop[..., 1] == crop[..., 2]).all()),
                  "upscale": crop.shape[0] / float(small.crop_box[2] - small.crop_box[0]),
                  "expert_gray48": _read_face(expert, small), "expert_colour": _read_face(expert, colour)}
    print({k: v for k, v in found.items() if not k.startswith("expert")})
    print("expert on the 48 px gray face:", found.get("expert_gray48"))
    print("expert on the colour crop:    ", found.get("expert_colour"))
    return found


def exercise_3() -> dict:
    """Exercise 3: how many frames does `load_frames` give for the carphone clip at 1 FPS, at 2 FPS, and at
    1 FPS with `max_frames=3`?

    Answer: 5, 9 and 3 - not 4, 8 and 3. The clip is 120 frames at 29.97 fps, so it lasts 4.004 s, and the
    sampling instants 0, 1, 2, 3, 4 s all lie inside it (at 2 FPS: 0, 0.5, ..., 4 s). A clip of exactly 4.000 s
    (120 frames at 30 fps) gives 4 instants. `max_frames` keeps evenly spaced picks (here the frames at about
    0, 2 and 4 s), so a long video is still covered from start to end.
    """
    video = samples.carphone_video()
    counts = {"fps1": len(load_frames(video, fps=1.0)), "fps2": len(load_frames(video, fps=2.0)),
              "fps1_max3": len(load_frames(video, fps=1.0, max_frames=3)),
              "exact_4s_fps1": len(nearest_frame_indices(np.arange(120) / 30.0, fps=1.0))}
    print(counts)
    return counts


def solve(device: str = "cpu") -> dict:
    torch.set_num_threads(1)  # small nets: one thread is as fast, and results do not depend on the core count
    return {"exercise_1": exercise_1(device=device), "exercise_2": exercise_2(device), "exercise_3": exercise_3()}


if __name__ == "__main__":
    solve()
