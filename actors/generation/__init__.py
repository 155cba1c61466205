"""Generation: the people a run invents and the conversations they have with the assistant."""
