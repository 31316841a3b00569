"""The tree-sitter outline of the systems languages (Go, Rust, Java, C, C++): the exact classes and functions
with their line ranges, qualnames, parents, signatures and doc comments."""

from __future__ import annotations

from atlas_pageindex.outline import parse
from tests.pageindex.outlines import node, rows

GO = """\
// Package store keeps blobs.
package store

import "errors"

// Store keeps blobs in memory.
type Store struct {
	data map[string][]byte
}

// Reader reads blobs.
type Reader interface {
	Get(key string) ([]byte, error)
}

// Get returns one blob.
func (s *Store) Get(key string) ([]byte, error) {
	if b, ok := s.data[key]; ok {
		return b, nil
	}
	return nil, errors.New("missing")
}

// New makes an empty Store.
func New() *Store {
	return &Store{data: map[string][]byte{}}
}
"""


def test_go() -> None:
    outline = parse("store/store.go", GO)
    assert (outline.language, outline.lines, outline.doc) == ("go", 27, "Package store keeps blobs.")
    assert rows(outline) == [
        ("class", "Store", 7, 9),
        ("class", "Reader", 12, 14),
        ("function", "Reader.Get", 13, 13),
        ("function", "Store.Get", 17, 22),  # a method: qualname Recv.Name, though declared outside the struct
        ("function", "New", 25, 27),
    ]
    assert [n.parent for n in outline.nodes] == [None, None, 1, None, None]
    store = node(outline, "Store")
    assert (store.signature, store.doc) == ("type Store struct", "Store keeps blobs in memory.")
    get = node(outline, "Store.Get")
    assert (get.name, get.signature, get.doc) == (
        "Get",
        "func (s *Store) Get(key string) ([]byte, error)",
        "Get returns one blob.",
    )
    assert node(outline, "New").doc == "New makes an empty Store."


RUST = """\
//! Geometry helpers.

use std::fmt;

/// A point in the plane.
#[derive(Debug, Clone)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    /// The origin.
    pub fn origin() -> Self {
        Point { x: 0.0, y: 0.0 }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.x, self.y)
    }
}

pub trait Shape {
    fn area(&self) -> f64;
}

/// Distance between two points.
pub fn distance(a: &Point, b: &Point) -> f64 {
    ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
}
"""


def test_rust() -> None:
    outline = parse("src/geo.rs", RUST)
    assert (outline.language, outline.lines, outline.doc) == ("rust", 32, "Geometry helpers.")
    assert rows(outline) == [
        ("class", "Point", 6, 10),  # the attribute's line starts it, like a decorator
        ("class", "Point", 12, 17),
        ("function", "Point.origin", 14, 16),
        ("class", "Point", 19, 23),
        ("function", "Point.fmt", 20, 22),
        ("class", "Shape", 25, 27),
        ("function", "Shape.area", 26, 26),
        ("function", "distance", 30, 32),
    ]
    assert [n.parent for n in outline.nodes] == [None, None, 1, None, 3, None, 5, None]
    assert node(outline, "Point").doc == "A point in the plane."
    assert node(outline, "Point").signature == "pub struct Point"
    assert node(outline, "Point", 2).signature == "impl fmt::Display for Point"
    assert node(outline, "Point.origin").doc == "The origin."
    assert node(outline, "Shape.area").signature == "fn area(&self) -> f64"
    distance = node(outline, "distance")
    assert (distance.signature, distance.doc) == (
        "pub fn distance(a: &Point, b: &Point) -> f64",
        "Distance between two points.",
    )


JAVA = """\
package com.example.shop;

import java.util.List;

/**
 * An order of items.
 */
public class Order {
    private final List<String> items;

    /** Makes an empty order. */
    public Order(List<String> items) {
        this.items = items;
    }

    @Override
    public String toString() {
        return String.join(",", items);
    }

    public interface Listener {
        void changed(Order order);
    }

    enum Status { OPEN, PAID }

    // Counts the items.
    static int count(Order o) {
        Runnable r = new Runnable() {
            public void run() {}
        };
        return o.items.size();
    }
}
"""


def test_java() -> None:
    outline = parse("src/main/java/com/example/shop/Order.java", JAVA)
    assert (outline.language, outline.lines, outline.doc) == ("java", 34, "")
    assert rows(outline) == [
        ("class", "Order", 8, 34),
        ("function", "Order.Order", 12, 14),
        ("function", "Order.toString", 16, 19),
        ("class", "Order.Listener", 21, 23),
        ("function", "Order.Listener.changed", 22, 22),
        ("class", "Order.Status", 25, 25),
        ("function", "Order.count", 28, 33),  # the anonymous Runnable's run() stays out
    ]
    assert [n.parent for n in outline.nodes] == [None, 0, 0, 0, 3, 0, 0]
    assert node(outline, "Order").doc == "An order of items."
    assert node(outline, "Order").signature == "public class Order"
    ctor = node(outline, "Order.Order")
    assert (ctor.signature, ctor.doc) == ("public Order(List<String> items)", "Makes an empty order.")
    assert node(outline, "Order.toString").signature == "@Override public String toString()"
    assert node(outline, "Order.count").doc == "Counts the items."


C = """\
/* Ring buffer. */

#include <stddef.h>

/* A fixed-size ring. */
struct ring {
    char *buf;
    size_t head;
};

typedef struct {
    int x, y;
} point_t;

struct ring;

// Pushes one byte; returns 0 when full.
int ring_push(struct ring *r, char c)
{
    r->buf[r->head++] = c;
    return 1;
}

static size_t ring_len(const struct ring *r) { return r->head; }
"""


def test_c() -> None:
    outline = parse("src/ring.c", C)
    assert (outline.language, outline.lines, outline.doc) == ("c", 24, "Ring buffer.")
    assert rows(outline) == [
        ("class", "ring", 6, 9),
        ("class", "point_t", 11, 13),  # an anonymous struct is named by its typedef
        ("function", "ring_push", 18, 22),
        ("function", "ring_len", 24, 24),
    ]
    assert node(outline, "ring").doc == "A fixed-size ring."
    push = node(outline, "ring_push")
    assert (push.signature, push.doc) == (
        "int ring_push(struct ring *r, char c)",
        "Pushes one byte; returns 0 when full.",
    )
    assert node(outline, "ring_len").signature == "static size_t ring_len(const struct ring *r)"
    assert parse("include/ring.h", C).language == "c"


CPP = """\
// Shapes.

#include <cmath>

namespace geo {

/// A circle.
class Circle {
public:
    explicit Circle(double r) : r_(r) {}
    double area() const { return M_PI * r_ * r_; }
    void scale(double k);

private:
    double r_;
};

void Circle::scale(double k) { r_ *= k; }

template <typename T>
T clamp(T v, T lo, T hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

}  // namespace geo

int main() {
    auto f = [](int x) { return x; };
    return f(0);
}
"""


def test_cpp() -> None:
    outline = parse("src/geo.cpp", CPP)
    assert (outline.language, outline.lines, outline.doc) == ("cpp", 30, "Shapes.")
    assert rows(outline) == [
        ("class", "geo", 5, 25),
        ("class", "geo.Circle", 8, 16),
        ("function", "geo.Circle.Circle", 10, 10),
        ("function", "geo.Circle.area", 11, 11),
        ("function", "geo.Circle.scale", 18, 18),  # `Circle::scale` defined outside its class
        ("function", "geo.clamp", 20, 23),  # the template line starts it
        ("function", "main", 27, 30),
    ]
    assert [n.parent for n in outline.nodes] == [None, 0, 1, 1, 0, 0, None]
    circle = node(outline, "geo.Circle")
    assert (circle.name, circle.signature, circle.doc) == ("Circle", "class Circle", "A circle.")
    assert node(outline, "geo.Circle.area").signature == "double area() const"
    assert node(outline, "geo.Circle.scale").name == "scale"
    assert node(outline, "geo.clamp").signature == "template <typename T> T clamp(T v, T lo, T hi)"
