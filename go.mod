module github.com/hagent/hagent

go 1.26.0
