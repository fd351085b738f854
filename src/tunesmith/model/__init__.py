"""tunesmith.model"""
