"""Generation: continuations of held-out prompts (the paper's continuation column) and what judges them.

prompts.py picks the prompts (the same test-split utterances in every view), sample.py continues them from a
run's checkpoint (`modevo sample`). Stage order: after score; nothing earlier imports it.
"""
