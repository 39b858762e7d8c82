package org.cardiacnets.fhirvalidator;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.parser.IParser;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationResult;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.UnknownCodeSystemWarningValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;

/**
 * HAPI FHIR's R4 instance validator, offline: the R4 core definitions (hapi-fhir-validation-resources-r4), UCUM and
 * the other code systems HAPI carries, the project's CodeSystem and extensions (--definitions DIR), and no
 * terminology server (codes of LOINC and SNOMED CT cannot be checked offline: warnings, as with validator_cli -tx n/a).
 *
 * <p>Usage: ValidateR4 [--definitions DIR] FILE... (a .json file holds one resource, a .ndjson file one per line).
 * Prints one tab-separated line per message (file[:line], severity, location, message); exit 0 when no message is an
 * error or fatal, 1 otherwise, 2 on a usage error.
 */
public final class ValidateR4 {
  private ValidateR4() {}

  public static void main(String[] args) throws IOException {
    FhirContext ctx = FhirContext.forR4();
    IParser parser = ctx.newJsonParser();
    PrePopulatedValidationSupport own = new PrePopulatedValidationSupport(ctx);
    List<Path> files = new ArrayList<>();
    for (int i = 0; i < args.length; i++) {
      if (args[i].equals("--definitions") && i + 1 < args.length) {
        try (DirectoryStream<Path> dir = Files.newDirectoryStream(Path.of(args[++i]), "*.json")) {
          for (Path definition : dir) {
            own.addResource(parser.parseResource(Files.readString(definition)));
          }
        }
      } else {
        files.add(Path.of(args[i]));
      }
    }
    if (files.isEmpty()) {
      System.err.println("usage: ValidateR4 [--definitions DIR] FILE...");
      System.exit(2);
    }
    UnknownCodeSystemWarningValidationSupport unknown = new UnknownCodeSystemWarningValidationSupport(ctx);
    unknown.setNonExistentCodeSystemSeverity(IValidationSupport.IssueSeverity.WARNING);
    ValidationSupportChain chain = new ValidationSupportChain(
        new DefaultProfileValidationSupport(ctx), own, new SnapshotGeneratingValidationSupport(ctx),
        new CommonCodeSystemsTerminologyService(ctx), new InMemoryTerminologyServerValidationSupport(ctx), unknown);
    FhirValidator validator = ctx.newValidator().registerValidatorModule(new FhirInstanceValidator(chain));
    int errors = 0;
    for (Path file : files) {
      boolean ndjson = file.toString().endsWith(".ndjson");
      List<String> resources = ndjson ? Files.readAllLines(file) : List.of(Files.readString(file));
      for (int n = 0; n < resources.size(); n++) {
        if (resources.get(n).isBlank()) {
          continue;
        }
        ValidationResult result = validator.validateWithResult(resources.get(n));
        for (SingleValidationMessage message : result.getMessages()) {
          String severity = message.getSeverity().getCode();
          if (severity.equals("error") || severity.equals("fatal")) {
            errors++;
          }
          String where = ndjson ? file + ":" + (n + 1) : file.toString();
          System.out.println(where + "\t" + severity + "\t" + message.getLocationString() + "\t"
              + message.getMessage().replace('\n', ' ').replace('\t', ' '));
        }
      }
    }
    System.exit(errors == 0 ? 0 : 1);
  }
}
