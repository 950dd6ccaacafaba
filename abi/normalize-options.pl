#!/usr/bin/perl
# normalize-options.pl BASELINE.abi CURRENT.abi > NORMALIZED.abi
#
# Option structs (softkit_*_options) are size-prefixed: a minor version may
# append members after the last one of the baseline (abi/README.md). abidiff
# has no exact way to allow only that, so scripts/abi-check.sh compares the
# baseline with CURRENT cut back to the baseline's layout: for each such struct
# whose CURRENT members start with exactly as many members as the baseline had
# and whose extra members all lie at or past the baseline's size, the extra
# members are dropped and the size is set back. Anything else (a member
# inserted before the end, a changed offset or type, a shrunk struct) is left
# alone and abidiff reports it. Grown structs are listed on stderr.
use strict;
use warnings;

sub slurp { local $/; open(my $f, '<', $_[0]) or die "$_[0]: $!\n"; my $s = <$f>; close $f; $s }

my ($baseline_file, $current_file) = @ARGV;
die "usage: normalize-options.pl BASELINE CURRENT\n" unless defined $current_file;
my $baseline = slurp($baseline_file);
my $current = slurp($current_file);

my $struct_re = qr{(<class-decl name='(softkit_\w+_options)' size-in-bits='(\d+)'[^>]*>)(.*?)(\n\s*</class-decl>)}s;
my $member_re = qr{\n\s*<data-member [^>]*layout-offset-in-bits='(\d+)'[^>]*>.*?</data-member>}s;

my %base;  # name => [size, member count]
while ($baseline =~ /$struct_re/g) {
  my ($name, $size, $body) = ($2, $3, $4);
  my $count = () = $body =~ /$member_re/g;
  $base{$name} = [$size, $count];
}

$current =~ s{$struct_re}{
  my ($open, $name, $size, $body, $close) = ($1, $2, $3, $4, $5);
  my $out = "$open$body$close";
  if (exists $base{$name} && $size > $base{$name}[0]) {
    my ($bsize, $bcount) = @{$base{$name}};
    my @members;
    push @members, [$&, $1] while $body =~ /$member_re/g;
    my @extra = @members[$bcount .. $#members];
    if (@members > $bcount && !grep { $_->[1] < $bsize } @extra) {
      my $kept = join '', map { $_->[0] } @members[0 .. $bcount - 1];
      (my $head = $body) =~ s/$member_re.*//s;
      (my $open_cut = $open) =~ s/size-in-bits='\d+'/size-in-bits='$bsize'/;
      $out = "$open_cut$head$kept$close";
      printf STDERR "%s grew from %d to %d bits by %d member(s) at the end: allowed\n",
        $name, $bsize, $size, scalar @extra;
    }
  }
  $out
}ge;
print $current;
