package fhirsample

// The fixed lists synthetic data is drawn from. The surnames are invented
// so that no generated person can be mistaken for a real one.
var (
	givenFemale = []string{"Ada", "Beatrix", "Clara", "Dorothea", "Edith", "Fiona", "Greta", "Hazel", "Iris", "June", "Lena", "Mabel", "Nora", "Opal", "Pearl", "Rosa"}
	givenMale   = []string{"Albert", "Bruno", "Cyril", "Dexter", "Elmer", "Felix", "Gus", "Hugo", "Ivor", "Jasper", "Kurt", "Lionel", "Milo", "Otis", "Percy", "Rufus"}
	families    = []string{"Testwell", "Sampleton", "Mockridge", "Fakenham", "Demoski", "Placeholt", "Stubbins", "Fixturo", "Dummond", "Synthwaite", "Examplar", "Pretendo", "Notreal", "Fictivo", "Madeupson"}
	streets     = []string{"Sample Street", "Test Avenue", "Example Road", "Mock Lane", "Demo Boulevard", "Fixture Way"}
	places      = []struct{ city, state, area, zip string }{
		{"Springfield", "IL", "217", "627"}, {"Riverton", "WY", "307", "825"}, {"Fairview", "OR", "503", "970"},
		{"Greenville", "SC", "864", "296"}, {"Franklin", "TN", "615", "370"},
	}
)

// coded is a code with its display text.
type coded struct{ code, display string }

// diagnoses are ICD-10-CM codes for Conditions and Claim diagnoses.
var diagnoses = []coded{
	{"E11.9", "Type 2 diabetes mellitus without complications"},
	{"I10", "Essential (primary) hypertension"},
	{"J45.909", "Unspecified asthma, uncomplicated"},
	{"E78.5", "Hyperlipidemia, unspecified"},
	{"M54.50", "Low back pain, unspecified"},
	{"J06.9", "Acute upper respiratory infection, unspecified"},
	{"K21.9", "Gastro-esophageal reflux disease without esophagitis"},
	{"F41.1", "Generalized anxiety disorder"},
}

// measure is a LOINC-coded quantitative observation and the range its
// synthetic values are drawn from.
type measure struct {
	loinc, display  string
	unit, ucum      string
	low, high       float64
	decimals        int
	refLow, refHigh float64 // reference range; both 0 for none
}

// vitalSigns are obs-NNN-1..4 (category vital-signs), in that order.
var vitalSigns = []measure{
	{"8867-4", "Heart rate", "beats/minute", "/min", 55, 100, 0, 0, 0},
	{"8310-5", "Body temperature", "C", "Cel", 36.1, 37.8, 1, 0, 0},
	{"29463-7", "Body weight", "kg", "kg", 48, 110, 1, 0, 0},
	{"9279-1", "Respiratory rate", "breaths/minute", "/min", 12, 20, 0, 0, 0},
}

// labs are obs-NNN-5..7 (category laboratory), in that order.
var labs = []measure{
	{"2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", "mg/dL", 70, 180, 0, 70, 99},
	{"718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "g/dL", 11, 17.5, 1, 12, 17.5},
	{"4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "%", 4.5, 9.5, 1, 4, 5.6},
}
