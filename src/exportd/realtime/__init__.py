"""Socket.IO: the server, its handlers, and the relay that emits committed events in order."""
