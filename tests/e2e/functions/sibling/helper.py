VALUE = 'from-helper'
