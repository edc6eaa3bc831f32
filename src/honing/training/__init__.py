"""Training: seeding now; the neural trainer, callbacks and optimizers arrive with it."""
