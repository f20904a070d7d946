"""A deterministic in-memory datagram link that loses, duplicates, reorders and
delays, for tests of the control channel and the FSMs (no sockets, no clock).

    link = LossyLink(seed=7, loss=30, dup=10, reorder=10, delay=20, jitter=10)
    link.send(datagram, now)          # maybe dropped, maybe twice, maybe held back
    link.next_arrival()               # earliest arrival time (ms) or None
    link.deliver(now)                 # every datagram due by `now`, in arrival order

Probabilities are integer percentages. All randomness comes from `Rng`, a
xorshift32 generator seeded by the caller, so a run is the same on CPython and on
MicroPython. `link.down = True` drops everything (a silent or unplugged peer).
"""
import heapq


class Rng:
    """xorshift32 (Marsaglia 2003): small, fast, identical on every Python."""

    def __init__(self, seed=1):
        self.state = (seed & 0xFFFFFFFF) or 0x9E3779B9  # the state must not be 0

    def next(self):
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x

    def below(self, n):
        """An int in 0..n-1 (n >= 1); the modulo bias is irrelevant for tests."""
        return self.next() % n

    def chance(self, percent):
        return percent > 0 and self.below(100) < percent


class LossyLink:
    """One direction of a link. Each datagram is lost with `loss`%, else sent
    once more with `dup`%; every copy arrives after delay + 0..jitter ms, and with
    `reorder`% a copy is held back a further 1..hold ms so later ones overtake it."""

    def __init__(self, seed=1, loss=0, dup=0, reorder=0, delay=10, jitter=0, hold=None):
        self.rng = Rng(seed)
        self.loss = loss
        self.dup = dup
        self.reorder = reorder
        self.delay = delay
        self.jitter = jitter
        self.hold = hold if hold is not None else 5 * delay + 1
        self.down = False
        self.sent = self.dropped = self.duplicated = self.reordered = 0
        self._heap = []   # (arrival time, sequence, datagram): FIFO among equal times
        self._seq = 0

    def send(self, datagram, now):
        self.sent += 1
        rng = self.rng
        if self.down or rng.chance(self.loss):
            self.dropped += 1
            return
        copies = 1
        if rng.chance(self.dup):
            copies = 2
            self.duplicated += 1
        for _ in range(copies):
            t = now + self.delay + (rng.below(self.jitter + 1) if self.jitter else 0)
            if rng.chance(self.reorder):
                t += 1 + rng.below(self.hold)
                self.reordered += 1
            self._seq += 1
            heapq.heappush(self._heap, (t, self._seq, bytes(datagram)))

    def next_arrival(self):
        return self._heap[0][0] if self._heap else None

    def deliver(self, now):
        out = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            out.append(heapq.heappop(heap)[2])
        return out

    def pending(self):
        return len(self._heap)
