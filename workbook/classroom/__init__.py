"""Running a class: agendas, the day-before preflight, the room server and its LAN, the projector diff."""
