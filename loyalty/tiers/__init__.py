"""Tiers: the ladder and its rules, real-time upgrades after an earn, the scheduled evaluation
that moves every wallet to the tier its points earn, and the admin edits of the ladder."""
