"""The app's screens: one per section (monitor, review, chat, train, eval) plus small modals."""
