"""tunesmith.generation"""
