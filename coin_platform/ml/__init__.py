"""Scoring candidates: the rule-based scorer now, trained models as they are promoted."""
