# Class instances with attribute dicts, bound methods and small tuples:
# the everyday objects of an object-oriented program.
class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y

    def moved(self, dx, dy):
        return Point(self.x + dx, self.y + dy)

    def as_tuple(self):
        return (self.x, self.y)


points = [Point(i, -i) for i in range(100000)]
for step in range(8):
    points = [p.moved(step, 1) for p in points]
pairs = [p.as_tuple() for p in points]
print(len(pairs), sum(x for x, _ in pairs) % 1000003)
