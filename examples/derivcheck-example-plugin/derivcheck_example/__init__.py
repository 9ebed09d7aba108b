"""An example derivcheck plugin: two custom autograd Functions and their exact definitions.

``declarations`` is what the service reads (no torch); ``functions`` holds the torch code.
"""
