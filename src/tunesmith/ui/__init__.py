"""tunesmith.ui"""
