from .lending import LendingVenue


class LiquityVenue(LendingVenue):
    protocol = "liquity"
