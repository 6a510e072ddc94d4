"""Coding layers: each turns a prepared scene into sections and back, behind one protocol."""
