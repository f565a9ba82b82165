"""Tasks: zero-shot minimal-pair items (sBLIMP, later sWUGGY and tSC), rendered into any view through the
same corpus, units and views code as the training data."""
