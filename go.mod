module github.com/nodehealthd/nodehealthd

go 1.26.8
