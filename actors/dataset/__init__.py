"""Dataset: transcripts as files, and the training examples sliced and counted from them."""
