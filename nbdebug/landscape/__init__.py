"""The time-travelling landscape: projections of every epoch onto a 2-D canvas, the class
territories painted behind it, and how far each frame can be trusted."""
