"""One module per outside system: an interface, a real implementation and a local one."""
