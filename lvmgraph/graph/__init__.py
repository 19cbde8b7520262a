"""The compiled model graph: expressions, compilation, execution and rendering."""
