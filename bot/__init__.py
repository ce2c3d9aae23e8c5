"""A Markov-chain Discord bot that teaches sampling temperature."""
