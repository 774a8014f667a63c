package nodediag

import "github.com/nodehealthd/nodehealthd/internal/diag"

var diagCheckSections = diag.CheckSections
