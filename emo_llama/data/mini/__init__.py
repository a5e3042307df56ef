"""`mini`, the bundled dataset: real faces (`sources`) given the seven basic expressions by landmark-driven
Action-Unit warps (`warp`) and paint (`appearance`), built and split by identity (`build`), and checked by
classifiers that did not make it (`sanity`)."""
