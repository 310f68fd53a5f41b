"""Downstream evaluation: metrics, limited-label splits, fine-tuning and linear probing."""
