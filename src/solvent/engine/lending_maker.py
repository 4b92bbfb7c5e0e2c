from .lending import LendingVenue


class MakerVenue(LendingVenue):
    protocol = "maker"
