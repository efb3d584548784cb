"""What a results folder shows a reader beyond its table: plots, tokenizer health against accuracy, comparisons
of two folders, and the range and direction of every metric. Report-only code (no stage reads it)."""
