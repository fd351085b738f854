"""tunesmith.ui: the web app (``app``), its callbacks and state, SoundFont audio, the piano roll.

Importing this package imports nothing heavy; Gradio is needed by ``tunesmith.ui.app`` only.
"""
