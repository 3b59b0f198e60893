"""What requests to send: routes, the values of their variables and fields, and their bodies."""
