"""The paper's baseline selectors, one module each, behind one registry."""
