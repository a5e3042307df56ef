"""The paper's own modules, one file each: Clue Aggregator (Eq. 2), Face Info Mining (Eq. 3), projectors
(Eq. 5), prompting (chat template, frame tokens, answer-only labels for Eq. 6) and attention maps (notebook 03)."""
