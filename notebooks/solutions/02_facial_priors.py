"""Worked solutions to the exercises at the end of notebook 02 (facial priors).

    python notebooks/solutions/02_facial_priors.py

Real photos that ship inside installed packages (the astronaut and Grace Hopper, `emo_llama.faces.samples`),
MTCNN and the `offline` facial expert (face-api's nets and GEAR, with their real weights), on the CPU, in a
few seconds.
tests/test_solutions.py runs `solve` so that these answers never rot.
"""

from __future__ import annotations

import numpy as np
import torch

from emo_llama.expert import (
    AU_REGIONS,
    FIVE_POINT_NAMES,
    agreement_with_5_points,
    crops_to_tensor,
    get_expert,
)
from emo_llama.expert.landmarks import IBUG_MIRROR
from emo_llama.faces import CropConfig, FaceCropper, samples


def faces(device: str = "cpu") -> tuple[list[str], list, np.ndarray]:
    """(names, FaceResults, uint8 crops (B, 224, 224, 3)) of the two portraits, cropped as in the notebook."""
    names = ["astronaut", "grace_hopper"]
    results = FaceCropper(CropConfig(margin=0.5, size=224, device=device)).crop(
        [samples.astronaut(), samples.grace_hopper()])
    return names, results, np.stack([r.crop for r in results])


def exercise_1(device: str = "cpu") -> dict:
    """Exercise 1: face-api's 68 landmarks against MTCNN's 5 points, with and without `flip_average`.

    Predict first: two independent models - how far apart are their eyes, nose tip and mouth corners, in
    inter-ocular distances (IOD)? Does averaging the face with its mirror image help?

    Answer: they agree closely: every one of the 10 points is within 0.05 IOD (a few pixels on these photos),
    mean 0.027 IOD. Without the mirror average the mean error grows by half (0.041 IOD) and the worst point
    reaches 0.08 IOD: a single pass of the landmark net is slightly lopsided, and averaging it with its mirror
    cancels that part of the error. The worst point differs by face (the astronaut's image-left eye, Hopper's
    nose tip), so no single landmark is systematically off.
    """
    names, results, crops = faces(device)
    mtcnn = np.stack([r.landmarks_5 for r in results])
    errors = {}
    for flip_average in (True, False):
        out = get_expert("offline", device=device, flip_average=flip_average)(crops_to_tensor(crops))
        errors[flip_average] = agreement_with_5_points(out.landmarks_in_frame([r.crop_box for r in results]), mtcnn)
    for flip_average, err in errors.items():
        print(f"flip_average={flip_average}: mean {err.mean():.3f} IOD, max {err.max():.3f}")
        for name, row in zip(names, err):
            print(f"  {name:13s}", "  ".join(f"{p} {e:.3f}" for p, e in zip(FIVE_POINT_NAMES, row)))
    return {"errors_flip_average": errors[True], "errors_single_pass": errors[False]}


def exercise_2(device: str = "cpu") -> dict:
    """Exercise 2: mirror a crop (`crop[:, ::-1]`), run the expert, and map the landmarks back. What has to change
    besides x -> 1 - x, and how close do you get to the landmarks of the unmirrored crop?

    Answer: the indices must be swapped too: in the mirror image the subject's left eye is on the image's
    left, so point 36 (image-left eye corner) of the mirrored face is point 45 of the original. `IBUG_MIRROR`
    holds that permutation. With x -> 1 - x alone the points are off by about 0.23 of the crop side on average
    (eyes, brows and mouth corners trade places). With the swap and the default expert the two sets agree to
    about 1e-7: `flip_average=True` runs the face and its mirror and averages them, which makes the output
    mirror-symmetric by construction. With `flip_average=False` they differ by up to about 0.03 of the crop
    side (a few pixels): the network itself is not symmetric, and its gender probabilities change between the
    two views too (Hopper: P(male) 0.51 vs 0.68).
    """
    _, _, crops = faces(device)
    mirrored = np.ascontiguousarray(crops[:, :, ::-1])
    found = {}
    for flip_average in (True, False):
        expert = get_expert("offline", device=device, flip_average=flip_average)
        out, out_m = expert(crops_to_tensor(crops)), expert(crops_to_tensor(mirrored))
        back = out_m.landmarks_68[:, IBUG_MIRROR].clone()
        back[..., 0] = 1 - back[..., 0]
        naive = out_m.landmarks_68.clone()
        naive[..., 0] = 1 - naive[..., 0]
        found[flip_average] = {
            "max_diff_with_swap": float((back - out.landmarks_68).norm(dim=-1).max()),
            "mean_diff_without_swap": float((naive - out.landmarks_68).norm(dim=-1).mean()),
            "p_male": out.gender_probs[:, 1].tolist(), "p_male_mirrored": out_m.gender_probs[:, 1].tolist()}
        print(f"flip_average={flip_average}:", found[flip_average])
    return {"flip_average": found[True], "single_pass": found[False]}


def exercise_3(device: str = "cpu") -> dict:
    """Exercise 3: how many of the 49 face tokens does each Action-Unit region cover (`out.au_masks()`)? Which
    region is the largest, which the smallest, and can a region be empty?

    Answer: AU26 (jaw drop; a 0.9 x 0.8 IOD rectangle from the lips down to the chin) is the largest, 12 of the
    49 tokens on both faces; AU9 (nose wrinkler) and AU10 (upper lip raiser) are the smallest, 4 tokens each
    on both faces (AU17, the chin, also has 4 on the astronaut).
    Bilateral regions (AU1, AU2, AU6, AU7, AU12, ...) count both sides. No region is empty: one that covers no
    token centre takes the token nearest its anchor, so Local Face Attention always has something to pool. Note
    also where the tokens sit: their centres span only about 0.26-0.83 of the crop, the central 1/1.5 that the
    offline expert reads (see exercise 1 of notebook 01).
    """
    names, _, crops = faces(device)
    out = get_expert("offline", device=device)(crops_to_tensor(crops))
    counts = out.au_masks().sum(-1)  # (faces, regions)
    print(f"{'region':<6}" + "".join(f"{n:>14}" for n in names))
    for r, region in enumerate(AU_REGIONS):
        print(f"{region:<6}" + "".join(f"{int(counts[i, r]):>14}" for i in range(len(names))))
    per_face = {name: dict(zip(AU_REGIONS, counts[i].tolist())) for i, name in enumerate(names)}
    centres = out.token_centres
    return {"tokens_per_region": per_face, "num_tokens": out.face_tokens.shape[1],
            "token_centre_span": (float(centres.min()), float(centres.max()))}


def solve(device: str = "cpu") -> dict:
    torch.set_num_threads(1)  # small nets: one thread is as fast, and results do not depend on the core count
    with torch.no_grad():
        return {"exercise_1": exercise_1(device), "exercise_2": exercise_2(device), "exercise_3": exercise_3(device)}


if __name__ == "__main__":
    solve()
