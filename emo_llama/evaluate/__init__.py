"""Scoring a model (notebook 05's last part): answers -> parsed classes -> Acc/UAR/WAR, the real-face check, the
figures and the summary lines a run ends with.

- `scoring`: `evaluate` (greedy answers for a split, split over processes, resumable) and metrics.json's reports;
- `protocol`: any model on any registered dataset (`python -m emo_llama.evaluate`), one metrics file per dataset,
  the Tab. 2/3-shaped table, and the zero-shot baselines;
- `real_faces`: the trained model and face-api's classical net on the real-face check set (`faces.samples`);
- `plots`: loss curve, confusion matrix, the check set with each answer;
- `summary`: `python -m emo_llama.evaluate.summary runs/05_train` prints the headline figures and the outputs.
"""

from emo_llama.data.plots import plot_confusion
from emo_llama.evaluate.plots import save_plots, show_real_faces
from emo_llama.evaluate.real_faces import real_face_check
from emo_llama.evaluate.scoring import evaluate, headline, no_face_report, to_jsonable, unreadable_report
from emo_llama.evaluate.summary import summarise

__all__ = ["evaluate", "headline", "no_face_report", "plot_confusion", "real_face_check", "save_plots",
           "show_real_faces", "summarise", "to_jsonable", "unreadable_report"]
