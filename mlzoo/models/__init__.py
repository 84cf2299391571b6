"""One LightningModule per concept; each file reads top to bottom like its paper."""
