"""Curation: fixing, cutting or rejecting generated transcripts, and the review of fixups by a person."""
