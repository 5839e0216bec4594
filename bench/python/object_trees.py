# Binary trees of class instances, built and dropped depth after depth (the
# shape of the classic binary-trees benchmark): allocation and refcount-free.
class Node:
    __slots__ = ("left", "right")

    def __init__(self, left, right):
        self.left = left
        self.right = right


def make(depth):
    if depth == 0:
        return Node(None, None)
    return Node(make(depth - 1), make(depth - 1))


def check(node):
    return 1 if node.left is None else 1 + check(node.left) + check(node.right)


long_lived = make(16)
total = 0
for depth in range(4, 17, 2):
    for _ in range(2 ** (16 - depth)):
        total += check(make(depth))
print(total, check(long_lived))
