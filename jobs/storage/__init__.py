"""Where outputs go and how they are written: file systems, the run layout, dated exports."""
